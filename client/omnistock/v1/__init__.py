"""Generated from protos/omnistock/v1 by scripts/gen_protos.py. Do not edit."""
