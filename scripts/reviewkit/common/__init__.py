"""The bottom layer: atomic file output, masking of credentials, the scripts' argument parsing.

It imports no other layer of the package.
"""
