"""Sources: the only modules that run git or talk to Kubernetes or GitHub. Each yields model objects."""
