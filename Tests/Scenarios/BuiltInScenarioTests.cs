using KernelModel.Scenarios;

namespace KernelModel.Tests.Scenarios;

/// <summary>Every scenario `kmodel run` prints must hold its expectations: the CLI's exit code and this test agree.</summary>
public sealed class BuiltInScenarioTests
{
    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var s in BuiltInScenarios.All)
        {
            data.Add(s.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Run_BuiltInScenario_AllExpectationsHold(string name)
    {
        Assert.True(BuiltInScenarios.TryGet(name, out var scenario));

        var trace = scenario.Run();

        Assert.True(trace.Passed, trace.Render());
        Assert.Contains(trace.Lines, l => l.Kind == TraceKind.Expect);
    }

    [Fact]
    public void Run_SeedRfcStrictVersusLegacy_DifferOnlyInWhatReleaseDoes()
    {
        Assert.True(BuiltInScenarios.TryGet("seed-rfc", out var strict));
        Assert.True(BuiltInScenarios.TryGet("seed-rfc-legacy", out var legacy));

        var strictTrace = strict.Run().Render();
        var legacyTrace = legacy.Run().Render();

        Assert.Contains("IOMMU fault", strictTrace, StringComparison.Ordinal);
        Assert.Contains("use-after-free", legacyTrace, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_NegativeErrno_PrintsItsName()
    {
        Assert.Equal("-EFAULT", ScenarioTrace.Format(-(long)Errno.EFAULT));
        Assert.Equal("0", ScenarioTrace.Format(0));
        Assert.Equal("0x7fff0000", ScenarioTrace.Format(0x7fff0000));
    }
}
