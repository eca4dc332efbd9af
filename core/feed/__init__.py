"""The news and warning feed: posts from the city, departments, units and mini-apps."""
