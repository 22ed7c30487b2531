"""The book built on committed results: labels, tables, claims, captions, protocol measurements,
figures, the chapters' runs, the Reproducibility plan, reproduce and Colab."""
