"""The review loop's computations: what annotators made of the suggestions (regions), which of
their regions answers which suggestion (matching) and how far they agree (agreement)."""
