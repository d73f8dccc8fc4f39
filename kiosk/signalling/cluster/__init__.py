"""Several server processes as one (issue 14): the bus between them, each node's front
door to the calls, the lease over the live calls and the sweep of overdue ones."""
