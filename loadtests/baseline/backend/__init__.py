"""The raw baseline: the Task API in plain Starlette + psycopg 3, a measuring stick, not a product.

Laid out as a checkout (`python -m backend --host H --port P --workers N`) so that
`python -m loadtests --app-dir loadtests/baseline` serves it like any other build. No hardening,
no FastAPI, no middleware: what the framework-free version of the same work costs.
"""
