"""What is measured: the metrics, the feature networks some of them use, test sets from folders."""
