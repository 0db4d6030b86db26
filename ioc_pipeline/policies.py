"""Run-time policies every asset module shares: retries on network sources, concurrency pools.

    asset that calls the network ──raise retry_network_failure(context, error)──► NETWORK_RETRY: retried
                                                                                   with exponential back-off
    asset that writes lake/<layer>/<table> ──pool=pool_for(layer, table)──► one writer at a time
    publish/warehouse ──pool=WAREHOUSE_POOL──► one publish at a time
    step that opens the warehouse file ──op_tags=WAREHOUSE_HOST──► under Dask, only on the warehouse's machine

Pools are op-level (dagster.yaml `concurrency.pools`, granularity `op`, default limit 1): a step
claims its pool's only slot before it runs, whichever run, schedule, sensor or `make run` started
it, so two runs never write one table (nor publish the warehouse) at the same time; the second
step waits in its run until the first is done. This module imports no asset module, so any asset
module may import it.
"""

from __future__ import annotations

import dagster as dg

# The dossier gateway answers 429 or 5xx under load, or drops connections. The source retries each page
# (IOC_DOSSIER_API_MAX_ATTEMPTS, back-off); when a page still fails, the whole step is retried: 5 times,
# after 1, 3, 7, 15, 31 s, jittered so that parallel runs do not retry in step.
NETWORK_RETRY = dg.RetryPolicy(max_retries=5, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def retry_network_failure(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    cause: Exception,
    retries: int = NETWORK_RETRY.max_retries,
) -> Exception:
    """What a step raises when the network failed it (a gateway that kept failing): `NETWORK_RETRY` as a
    `dg.RetryRequested` while `retries` are left (`IOC_DOSSIER_API_STEP_RETRIES`), then a `dg.Failure`
    with the cause's message.

    Raised by the step for that failure only, rather than set as the asset's `retry_policy`: with a policy,
    Dagster also retries a step interrupted by Ctrl-C or SIGTERM (a KeyboardInterrupt becomes a retry, and
    `make run` went on loading), and a refused file or key would need `allow_retries=False` everywhere."""
    attempt = context.retry_number + 1
    if attempt > retries:
        return dg.Failure(description=f"{cause} (the step was tried {attempt} times)", allow_retries=False)
    return dg.RetryRequested(max_retries=retries, seconds_to_wait=NETWORK_RETRY.calculate_delay(attempt))


WAREHOUSE_POOL = "warehouse"
# The warehouse is a file on one machine's disk. Under the Dask executor (executors.py) a step with these tags runs
# only on a worker started with `--resources warehouse=1` (dagster-dask's resource requirements tag), one at a time
# there; other executors ignore them.
DASK_RESOURCES_TAG = "dagster-dask/resource_requirements"
WAREHOUSE_HOST = {DASK_RESOURCES_TAG: '{"warehouse": 1}'}


def pool_for(layer: str, table: str) -> str:
    """The pool of the step that writes `lake/<layer>/<table>` (named like its asset key)."""
    return f"{layer}/{table}"
