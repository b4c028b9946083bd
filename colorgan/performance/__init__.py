"""Speed: device facts, timing, the bench, the prepared GPU check."""
