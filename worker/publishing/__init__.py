"""The publish path: the lease and fence (`publish`), breaker and limits in front of each
call (`guards`), the one place that sends `posts.publish` (`enqueue`), and what a
publish knows about an account (`account_cache`).
"""
