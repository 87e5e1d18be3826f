"""The Celery side of bench/async-jobs: one no-op task, Redis as broker and result backend."""

from celery import Celery


def make_app(redis_url: str) -> Celery:
    app = Celery("celery_noop", broker=redis_url, backend=redis_url)
    app.conf.update(task_ignore_result=False, worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True,
                    result_expires=3600)

    @app.task(name="celery_noop.noop")
    def noop(i):
        return i

    return app


if __name__ == "__main__":
    import os
    app = make_app(os.environ["REDIS_URL"])
    app.worker_main(["worker", "--loglevel=WARNING", "--concurrency", os.environ.get("CONCURRENCY", "2"),
                     "--pool", os.environ.get("POOL", "prefork"), "--without-gossip", "--without-mingle",
                     "--without-heartbeat"])
