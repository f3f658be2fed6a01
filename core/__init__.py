"""Code shared by every Landing Lab service: hashing, event schema, storage, settings, HTTP."""
