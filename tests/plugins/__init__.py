"""The conformance checker, a pytest plugin of its own: it runs the suite's black-box tests
against any backend by URL (`nox -s conformance`); and the SPEC ID table every run prints."""
