"""Dataset preparation from official releases into R2Gen's `annotation.json` + `labels.json`."""
