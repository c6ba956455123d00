"""The model registry: the one list of models the appliance evaluates and compares."""
