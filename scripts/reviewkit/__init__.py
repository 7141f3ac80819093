"""Shared components of the review-generation kit: loading, cleaning, keywords, prompts, splits."""
