namespace KernelModel.Pci.VfioPci;

/// <summary>
/// A reader/writer semaphore (struct rw_semaphore) for vfio-pci's memory_lock: readers are BAR
/// accesses and mmap faults, the writer is anything that changes whether BAR memory may be
/// touched (command register, power state, resets). Unlike ReaderWriterLockSlim it owns nothing
/// to dispose, and a thread that takes it twice is a bug the model reports instead of deadlocking.
/// </summary>
internal sealed class RwSemaphore
{
    private readonly object _gate = new();
    private readonly List<Thread> _readers = [];
    private Thread? _writer;

    /// <summary>Readers holding it.</summary>
    public int Readers
    {
        get
        {
            lock (_gate)
            {
                return _readers.Count;
            }
        }
    }

    /// <summary>True while a writer holds it.</summary>
    public bool IsWriteLocked
    {
        get
        {
            lock (_gate)
            {
                return _writer is not null;
            }
        }
    }

    /// <summary>down_read().</summary>
    public void DownRead()
    {
        lock (_gate)
        {
            ThrowIfHeldByCurrent();
            while (_writer is not null)
            {
                Monitor.Wait(_gate);
            }

            _readers.Add(Thread.CurrentThread);
        }
    }

    /// <summary>up_read().</summary>
    public void UpRead()
    {
        lock (_gate)
        {
            if (!_readers.Remove(Thread.CurrentThread))
            {
                throw new InvalidOperationException("memory_lock: up_read without down_read on this thread");
            }

            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>down_write().</summary>
    public void DownWrite()
    {
        lock (_gate)
        {
            ThrowIfHeldByCurrent();
            while (_writer is not null || _readers.Count != 0)
            {
                Monitor.Wait(_gate);
            }

            _writer = Thread.CurrentThread;
        }
    }

    /// <summary>down_write_trylock(): false at once when anyone holds it.</summary>
    public bool TryDownWrite()
    {
        lock (_gate)
        {
            ThrowIfHeldByCurrent();
            if (_writer is not null || _readers.Count != 0)
            {
                return false;
            }

            _writer = Thread.CurrentThread;
            return true;
        }
    }

    /// <summary>up_write().</summary>
    public void UpWrite()
    {
        lock (_gate)
        {
            if (_writer != Thread.CurrentThread)
            {
                throw new InvalidOperationException("memory_lock: up_write by a thread that does not hold it");
            }

            _writer = null;
            Monitor.PulseAll(_gate);
        }
    }

    private void ThrowIfHeldByCurrent()
    {
        if (_writer == Thread.CurrentThread || _readers.Contains(Thread.CurrentThread))
        {
            throw new InvalidOperationException("memory_lock: recursive acquisition would deadlock");
        }
    }
}
