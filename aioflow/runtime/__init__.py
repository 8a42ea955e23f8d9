"""The runtime: scheduling one run's tasks, running each task, and where task bodies execute."""
