"""Drop-in facades with the names and module paths of older session systems.

Each only translates the old API's calls into satchel's session, manager and store calls.
"""
