"""Framework integrations: satchel behind each framework's own session API.

Each module imports its framework only when used, and only translates: the framework's request
into the facts the engine needs, the engine's decision into the framework's response.
"""
