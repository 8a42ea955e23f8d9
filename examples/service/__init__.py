"""A web service that runs a flow per request: see app.py."""
