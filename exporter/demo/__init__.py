"""The built-in MiniShop demo: a generated GitOps monorepo with its own ground truth."""
