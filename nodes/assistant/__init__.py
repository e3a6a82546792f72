"""The personal assistant (seed 000): the router that hands a request to its specialists."""
