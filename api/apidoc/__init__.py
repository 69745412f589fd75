"""The OpenAPI document of every route, built from the models that validate the requests.

Most routes take the raw request (start/stop are even dispatched in front of FastAPI, see api.direct)
and validate bodies themselves with pydantic models, so FastAPI cannot see what they accept or answer.
`api.apidoc.operations` declares, per (method, path), the body model, the parameters with the bounds
the code enforces, the answers and the role; `api.apidoc.document` merges that into FastAPI's document.
A route without a declaration makes building the document fail, so no route goes undocumented.
"""
