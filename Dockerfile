# One image for all four Landing Lab services; docker-compose.yml picks the command per service.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data

WORKDIR /app

COPY pyproject.toml README.md gunicorn.conf.py ./
COPY core/ core/
COPY ab_service/ ab_service/
COPY metrics_service/ metrics_service/
COPY landing/ landing/
COPY dashboard/ dashboard/
COPY .streamlit/ .streamlit/
RUN pip install --no-cache-dir .[redis]

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data

USER app
VOLUME ["/data"]
EXPOSE 8080

CMD ["gunicorn", "-c", "gunicorn.conf.py", "--bind", "0.0.0.0:8080", "landing:create_app()"]
