"""The query side: one pipeline from a query to ranked hits and a grounded answer.

Front doors (the CLI, ``service.http``) call ``pipeline.QueryPipeline``; nothing here imports them.
"""
