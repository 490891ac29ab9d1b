"""What observations mean: deployments, changes, failures, restores; one deployment seen by several sources."""
