"""Running teacher programs safely: AST policy, OS confinement, worker processes and their pool."""
