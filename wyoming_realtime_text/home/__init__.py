"""Home control: the assistant acts on the home through Home Assistant.

Tools for the Realtime session come from one table of HA's intents (`intents.py`); a
response's function calls become Wyoming `intent` events that HA runs itself, or, with a
token, requests to HA's own API.
"""
