"""Test support shared by the operator and gateway tiers: the API emulator, the operator, the kubelet."""
