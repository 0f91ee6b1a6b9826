namespace KernelModel.Kernel;

/// <summary>
/// A workqueue. Work runs in FIFO order when the queue is flushed; the machine flushes its system
/// workqueue at every return to user space (the end of each syscall), which stands in for the
/// kworker thread and keeps the model deterministic. A work item may queue more work; it runs in
/// the same flush. Flushing from inside a work item of the same queue is EDEADLK, as in the kernel.
/// </summary>
public sealed class Workqueue(string name)
{
    [ThreadStatic]
    private static Workqueue? t_running;

    private readonly Queue<(string Name, Action Work)> _pending = new();
    private readonly Lock _lock = new();

    /// <summary>The queue's name.</summary>
    public string Name { get; } = name;

    /// <summary>Work items queued and not yet run.</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>How many work items have run.</summary>
    public long Completed { get; private set; }

    /// <summary>queue_work(): runs <paramref name="work"/> at the next flush.</summary>
    public void Schedule(Action work, string what = "work")
    {
        lock (_lock)
        {
            _pending.Enqueue((what, work));
        }
    }

    /// <summary>flush_workqueue(): runs everything queued, including work queued meanwhile.</summary>
    public KResult Flush()
    {
        if (ReferenceEquals(t_running, this))
        {
            return Errno.EDEADLK;
        }

        var previous = t_running;
        t_running = this;
        try
        {
            while (true)
            {
                Action work;
                lock (_lock)
                {
                    if (!_pending.TryDequeue(out var item))
                    {
                        return KResult.Ok;
                    }

                    work = item.Work;
                }

                work();
                Completed++;
            }
        }
        finally
        {
            t_running = previous;
        }
    }
}
