"""Load tests of the Task API: Locust scenarios, a latency proxy, and a runner.

Kept out of the `backend` package on purpose (`python -m loadtests`): nothing here ships; it
drives the real backend over HTTP, the way the frontend does, and measures what a production
deployment would see.
"""
