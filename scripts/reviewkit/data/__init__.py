"""The data step: reading the reviews, cleaning, keywords, the prompt, the grouped splits and the pipeline."""
