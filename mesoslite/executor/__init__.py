"""The executor SDK and the built-in command executor.

Public names: :class:`Executor` (callbacks to override: ``registered``,
``reregistered``, ``disconnected``, ``launch_task``, ``kill_task``,
``framework_message``, ``shutdown``, ``error``), :class:`ExecutorDriver`
(``start``/``stop``/``abort``/``join``/``run``, ``send_status_update``,
``send_framework_message``), :class:`DriverStatus` and
:class:`ExecutorSettings` (what the agent passes in the environment).

A minimal executor::

    from mesoslite.executor import Executor, ExecutorDriver
    from mesoslite.protocol import TaskState, TaskStatus

    class Hello(Executor):
        def launch_task(self, driver, task):
            driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_RUNNING))
            driver.send_status_update(TaskStatus(task.task_id, TaskState.TASK_FINISHED))

    ExecutorDriver(Hello()).run()

The command executor (``python -m mesoslite.executor.command``) is in
:mod:`mesoslite.executor.command`.
"""

from mesoslite.executor.driver import DriverStatus, Executor, ExecutorDriver, ExecutorSettings

__all__ = ["DriverStatus", "Executor", "ExecutorDriver", "ExecutorSettings"]
