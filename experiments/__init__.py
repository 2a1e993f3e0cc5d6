"""Hydra entry points and the integrations that agd/ must not import (W&B)."""
