"""`make reproduce`: the profiles, the plan of stages, running them, their progress, the book build."""
