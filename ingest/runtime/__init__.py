"""Loading models offline, exporting them and running them: one home for every model kind.

``offline`` is the one place that sets the environment keeping model libraries off the
network; ``resolve`` finds a model's local files (or says at once that it is missing);
``device`` picks where and on which backend a model runs; ``load`` builds torch models from
local files; ``export_cache``, ``fingerprint`` and ``openvino`` make, key and run exported
graphs; ``spacy_model`` is the parser's NLP model. The embedder (``ingest.embedder_st``) and
the reranker (``service.query.rerank``) both use them.
"""
