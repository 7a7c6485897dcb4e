"""Scale-out on Ray Serve: many wafer replicas behind one Cerebras endpoint (``wafer serve --replicas N``).

The layer above the server: every engine replica runs the single-process server's own application
(same routes, validation, errors, streaming, headers, keys) in-process; one ingress deployment takes
the HTTP requests from Ray Serve's proxy and relays each to a replica chosen by a prefix-aware request
router (``routing.py``). Rate limits live in one named actor (``state.py``) that every replica charges,
so a key's limits hold across replicas. Ray is an optional extra (``pip install 'wafer[ray]'``): the
single-process server never imports this package.

    forward.py   what the ingress hands a replica: the HTTP request, and the text the router matches
    asgi.py      run one forwarded request through an ASGI app in-process, as messages
    limits.py    per-key rate limits kept in the state actor, charged from every replica
    state.py     the state actor: shared limits and the replicas' reports (stats, metrics)
    merge.py     one view of many replicas: summed engine stats, Prometheus texts with a replica label
    routing.py   request routers: prefix affinity balanced against load; round robin (a baseline)
    replica.py   the engine deployment: models, engines and the server application
    ingress.py   the ingress deployment: relay, retries, clean errors, deployment-wide health and metrics
    deploy.py    build the Serve application from ``wafer serve`` flags, run it, roll it, stop it
"""
