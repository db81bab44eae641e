"""Whole networks built from the reference modules, with their original state_dict names."""
