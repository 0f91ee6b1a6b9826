namespace KernelModel.Kernel;

/// <summary>A process's file descriptor table: lowest free number first, RLIMIT_NOFILE bounded.</summary>
public sealed class FdTable
{
    private readonly List<File?> _files = [];
    private readonly Lock _lock = new();

    /// <summary>Creates a table with the given RLIMIT_NOFILE.</summary>
    public FdTable(int limit = 1024) => Limit = limit;

    /// <summary>RLIMIT_NOFILE.</summary>
    public int Limit { get; }

    /// <summary>How many fds are open.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _files.Count(f => f is not null);
            }
        }
    }

    /// <summary>fd_install: takes over the caller's reference. EMFILE when the table is full.</summary>
    public KResult<int> Install(File file)
    {
        lock (_lock)
        {
            var fd = _files.IndexOf(null);
            if (fd < 0)
            {
                if (_files.Count >= Limit)
                {
                    return Errno.EMFILE;
                }

                fd = _files.Count;
                _files.Add(null);
            }

            _files[fd] = file;
            return fd;
        }
    }

    /// <summary>fdget: the file behind fd with a new reference (the caller puts it), or EBADF.</summary>
    public KResult<File> Get(int fd)
    {
        lock (_lock)
        {
            if (fd < 0 || fd >= _files.Count || _files[fd] is not { } file)
            {
                return Errno.EBADF;
            }

            return file.Get();
        }
    }

    /// <summary>close(): removes fd and drops its reference outside the table lock.</summary>
    public KResult Close(int fd)
    {
        File? file;
        lock (_lock)
        {
            if (fd < 0 || fd >= _files.Count || _files[fd] is null)
            {
                return Errno.EBADF;
            }

            file = _files[fd];
            _files[fd] = null;
        }

        file!.Put();
        return KResult.Ok;
    }

    /// <summary>Closes every fd (process exit).</summary>
    public void CloseAll()
    {
        List<File> files;
        lock (_lock)
        {
            files = [.. _files.OfType<File>()];
            _files.Clear();
        }

        foreach (var file in files)
        {
            file.Put();
        }
    }
}
