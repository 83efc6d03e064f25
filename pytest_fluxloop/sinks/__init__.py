"""Where finished trace records go."""
