"""AllCare Server: backend for AI-assisted skin-lesion triage."""

__version__ = "0.1.0"
