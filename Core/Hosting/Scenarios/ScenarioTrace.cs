using System.Globalization;

namespace KernelModel.Scenarios;

/// <summary>One line of a scenario's trace.</summary>
public sealed record TraceLine(TraceKind Kind, string Text, bool Ok = true);

/// <summary>What a trace line records.</summary>
public enum TraceKind
{
    /// <summary>A system call and its result.</summary>
    Syscall,
    /// <summary>What the kernel model did (a zap, a notifier, a fault).</summary>
    Kernel,
    /// <summary>An expectation of the scenario, met or not.</summary>
    Expect,
    /// <summary>Narration.</summary>
    Note,
}

/// <summary>The readable trace of a scenario run: each step, its result, and the expectations checked.</summary>
public sealed class ScenarioTrace
{
    private readonly List<TraceLine> _lines = [];

    /// <summary>The lines so far.</summary>
    public IReadOnlyList<TraceLine> Lines => _lines;

    /// <summary>True while every expectation has held.</summary>
    public bool Passed => _lines.All(l => l.Kind != TraceKind.Expect || l.Ok);

    /// <summary>Records a system call; negative results are shown as errno names.</summary>
    public long Syscall(string call, long result)
    {
        _lines.Add(new TraceLine(TraceKind.Syscall, $"{call} = {Format(result)}"));
        return result;
    }

    /// <summary>Records what the kernel model did.</summary>
    public void Kernel(string what) => _lines.Add(new TraceLine(TraceKind.Kernel, what));

    /// <summary>Records narration.</summary>
    public void Note(string what) => _lines.Add(new TraceLine(TraceKind.Note, what));

    /// <summary>Checks an expectation; a failed one fails the scenario.</summary>
    public bool Expect(bool condition, string what)
    {
        _lines.Add(new TraceLine(TraceKind.Expect, what, condition));
        return condition;
    }

    /// <summary>Checks that a call returned <paramref name="expected"/> (a value or a negative errno).</summary>
    public bool ExpectResult(long actual, long expected, string what) =>
        Expect(actual == expected, $"{what}: {Format(actual)} (expected {Format(expected)})");

    /// <summary>A result as Linux tools print it: a number, or -ERRNO.</summary>
    public static string Format(long result) =>
        result < 0 && result >= -4095 && Enum.IsDefined((Errno)(-result))
            ? $"-{(Errno)(-result)}"
            : result > 0xffff ? $"0x{result:x}" : result.ToString(CultureInfo.InvariantCulture);

    /// <summary>The trace as text, one line per step.</summary>
    public string Render()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var line in _lines)
        {
            var prefix = line.Kind switch
            {
                TraceKind.Syscall => "  $ ",
                TraceKind.Kernel => "  kernel: ",
                TraceKind.Expect => line.Ok ? "  ok   " : "  FAIL ",
                _ => "  # ",
            };
            sb.Append(prefix).Append(line.Text).Append('\n');
        }

        return sb.ToString();
    }
}

/// <summary>A built-in scenario: a user sequence run against a fresh machine, with its expectations.</summary>
public sealed record Scenario(string Name, string Description, Action<ScenarioTrace> Body)
{
    /// <summary>Runs the scenario and returns its trace. An exception is a failed expectation, not a crash.</summary>
    public ScenarioTrace Run()
    {
        var trace = new ScenarioTrace();
        try
        {
            Body(trace);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            trace.Expect(false, $"the scenario ran to its end ({e.GetType().Name}: {e.Message})");
        }

        return trace;
    }
}
