"""The gateway's own network client, shared by upstreams, packs, JWKS and the CLI.

* ``httpclient.py``: a small pooled keep-alive HTTP/1.1 client (decision 001);
* ``netguard.py``: the SSRF guard, which vets every address a user-chosen URL leads to.
"""
