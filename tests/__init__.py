"""The mesoslite test suite: unit, component, integration and e2e tests."""
