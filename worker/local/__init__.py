"""One machine's deployment: embedded servers, `herald run`'s supervisor and the command
lines of its processes, Flower behind a login, and the demo data of `make run`.
"""
