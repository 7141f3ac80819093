"""Hand marking: the sample file, the key of a sample of several models and the statistics of the marks."""
