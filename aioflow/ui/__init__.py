"""The live local UI: `aioflow ui` serves a store's runs, their reports, cards and logs.

    pip install 'aioflow[ui]'
    aioflow ui --root .aioflow --port 8420     # http://127.0.0.1:8420/
    aioflow ui --metadata postgresql://host/db --blobs s3://bucket/prefix

Read-only, on 127.0.0.1 unless told otherwise; a running run's page updates by itself about
once a second, whichever process runs it. `app.py` is the Starlette application, `runs_page.py`
the list of runs, `server.py` starts uvicorn on a socket bound here (so port 0 works and the
address printed is the real one). Starlette and uvicorn are the `ui` extra, imported only by
`aioflow ui` (and whoever imports `aioflow.ui.app`).
"""
