"""State shared by the instances of one deployment, in Redis (``redis.url``; decision 024).

:mod:`~catalyst_mcp.cluster.bus` is each instance's pub/sub line to the others;
:mod:`~catalyst_mcp.cluster.sessions` keeps legacy sessions in Redis (any request of a session
on any instance); :mod:`~catalyst_mcp.cluster.parked` resumes a parked cross-era call on the
instance that holds it; :mod:`~catalyst_mcp.cluster.announce` has every instance apply the
configuration changes made through any one's API; :mod:`~catalyst_mcp.cluster.state` puts
them together for a :class:`~catalyst_mcp.app.Gateway`.
"""
