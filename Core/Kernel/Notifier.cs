namespace KernelModel.Kernel;

/// <summary>What a notifier callback returns (linux/notifier.h values).</summary>
[Flags]
public enum NotifyResult
{
    /// <summary>NOTIFY_DONE: don't care.</summary>
    Done = 0,
    /// <summary>NOTIFY_OK: suits me.</summary>
    Ok = 0x0001,
    /// <summary>NOTIFY_STOP_MASK: don't call further.</summary>
    StopMask = 0x8000,
    /// <summary>NOTIFY_BAD: bad/veto action.</summary>
    Bad = StopMask | 0x0002,
    /// <summary>NOTIFY_STOP: clean way to return from the notifier and stop further calls.</summary>
    Stop = Ok | StopMask,
}

/// <summary>The callback seam of a notifier block; an interface so tests can substitute it.</summary>
public interface INotifierCallback
{
    /// <summary>Called for each event on the chain the block is registered on.</summary>
    NotifyResult Notify(NotifierBlock block, ulong action, object? data);
}

/// <summary>struct notifier_block: a callback and its priority (higher runs first).</summary>
public sealed class NotifierBlock(INotifierCallback callback, int priority = 0)
{
    /// <summary>Creates a block from a delegate.</summary>
    public NotifierBlock(Func<NotifierBlock, ulong, object?, NotifyResult> callback, int priority = 0)
        : this(new DelegateCallback(callback), priority)
    {
    }

    /// <summary>notifier_call.</summary>
    public INotifierCallback Callback { get; } = callback;

    /// <summary>priority.</summary>
    public int Priority { get; } = priority;

    private sealed class DelegateCallback(Func<NotifierBlock, ulong, object?, NotifyResult> fn) : INotifierCallback
    {
        public NotifyResult Notify(NotifierBlock block, ulong action, object? data) => fn(block, action, data);
    }
}

/// <summary>
/// A notifier chain. Callers iterate a snapshot, so the list may change while a call is in flight
/// on another thread; what may not happen is a callback changing the chain that is calling it when
/// the real chain's lock would deadlock. Those calls fail with EDEADLK, and the callback is expected
/// to defer the change to a workqueue (seed RFC 10/10).
/// </summary>
public abstract class NotifierChain
{
    [ThreadStatic]
    private static List<NotifierChain>? t_calling;

    private readonly Lock _lock = new();
    private NotifierBlock[] _blocks = [];

    /// <summary>How many blocks are registered.</summary>
    public int Count => Volatile.Read(ref _blocks).Length;

    /// <summary>True when the current thread is inside this chain's <see cref="CallChain"/>.</summary>
    protected bool CallingOnThisThread => t_calling?.Contains(this) == true;

    /// <summary>Whether registering from inside the chain's own call would deadlock.</summary>
    protected abstract bool RegisterDeadlocksInsideCall { get; }

    /// <summary>Registers a block, ordered by priority. EEXIST if already on the chain.</summary>
    public KResult Register(NotifierBlock block)
    {
        if (RegisterDeadlocksInsideCall && CallingOnThisThread)
        {
            return Errno.EDEADLK;
        }

        lock (_lock)
        {
            if (Array.IndexOf(_blocks, block) >= 0)
            {
                return Errno.EEXIST;
            }

            // Like notifier_chain_register(): after every block of equal or higher priority.
            var list = new List<NotifierBlock>(_blocks);
            var at = list.FindIndex(b => b.Priority < block.Priority);
            list.Insert(at < 0 ? list.Count : at, block);
            Volatile.Write(ref _blocks, [.. list]);
            return KResult.Ok;
        }
    }

    /// <summary>
    /// Unregisters a block. ENOENT if it is not on the chain; EDEADLK from inside this chain's call
    /// (down_write under our own down_read, or synchronize_srcu inside the read section).
    /// </summary>
    public KResult Unregister(NotifierBlock block)
    {
        if (CallingOnThisThread)
        {
            return Errno.EDEADLK;
        }

        lock (_lock)
        {
            var at = Array.IndexOf(_blocks, block);
            if (at < 0)
            {
                return Errno.ENOENT;
            }

            var list = new List<NotifierBlock>(_blocks);
            list.RemoveAt(at);
            Volatile.Write(ref _blocks, [.. list]);
            return KResult.Ok;
        }
    }

    /// <summary>Calls every block in priority order until one returns a result with the stop bit.</summary>
    public NotifyResult CallChain(ulong action, object? data)
    {
        var blocks = Volatile.Read(ref _blocks);
        var calling = t_calling ??= [];
        calling.Add(this);
        try
        {
            var result = NotifyResult.Done;
            foreach (var block in blocks)
            {
                result = block.Callback.Notify(block, action, data);
                if ((result & NotifyResult.StopMask) != 0)
                {
                    break;
                }
            }

            return result;
        }
        finally
        {
            calling.RemoveAt(calling.LastIndexOf(this));
        }
    }
}

/// <summary>A blocking notifier chain (rw-semaphore protected): neither register nor unregister from a callback.</summary>
public sealed class BlockingNotifierChain : NotifierChain
{
    /// <inheritdoc />
    protected override bool RegisterDeadlocksInsideCall => true;
}

/// <summary>An SRCU notifier chain: registering from a callback is fine; unregistering waits for readers and would deadlock.</summary>
public sealed class SrcuNotifierChain : NotifierChain
{
    /// <inheritdoc />
    protected override bool RegisterDeadlocksInsideCall => false;
}
