"""The agent loop both agent faces run on: the Responses API and the Agents API."""
