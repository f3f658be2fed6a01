from concurrent.futures import ThreadPoolExecutor

from landing.sticky import StickyCookie, load_secret


def test_round_trip_and_tampering():
    cookie = StickyCookie("secret-1")
    value = cookie.dumps({"landing": "B", "hero": "C"})
    assert cookie.loads(value) == {"hero": "C", "landing": "B"}
    payload, _, signature = value.rpartition(".")
    forged = StickyCookie("other-secret").dumps({"landing": "A"})
    for bad in (forged, value[:-2] + "xx", payload + ".", "garbage", "", None, "a" * 5000,
                payload.replace(payload[:4], "eyJz") + "." + signature):
        assert cookie.loads(bad) == {}


def test_malformed_contents_are_ignored_whole():
    cookie = StickyCookie("s")
    for contents in (["landing", "B"], {"landing": 1}, {"bad key!": "A"}, {f"e{i}": "A" for i in range(51)}):
        assert cookie.loads(cookie.serializer.dumps(contents)) == {}


def test_secret_from_configuration_wins(tmp_path):
    assert load_secret("configured", tmp_path) == "configured"
    assert not (tmp_path / "landing_secret").exists()


def test_workers_starting_together_share_one_generated_secret(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_secret("", tmp_path / "data"), range(32)))
    assert len(secrets) == 1 and len(secrets.pop()) >= 32
    assert load_secret("", tmp_path / "data") == (tmp_path / "data" / "landing_secret").read_text()
