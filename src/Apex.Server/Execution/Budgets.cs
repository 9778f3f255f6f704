using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Execution;

/// <summary>
/// Monthly model budgets per plan tier (<c>Apex:Budgets:Free</c>, <c>Pro</c>, <c>Enterprise</c>); null is unlimited, the
/// default, since the built-in model costs nothing. An admin can override both figures per user. Months are UTC
/// calendar months.
/// </summary>
internal sealed class BudgetOptions
{
    public const string Section = "Apex:Budgets";

    public TierBudget Free { get; set; } = new();
    public TierBudget Pro { get; set; } = new();
    public TierBudget Enterprise { get; set; } = new();

    public TierBudget For(string tier) => tier switch { "enterprise" => Enterprise, "pro" => Pro, _ => Free };
}

internal sealed class TierBudget
{
    /// <summary>Input plus output tokens a month.</summary>
    [Range(0, long.MaxValue)] public long? MonthlyTokens { get; set; }
    [Range(0, double.MaxValue)] public double? MonthlyCostUsd { get; set; }
}

/// <summary>A user's budget this month and what is left of it when a run starts; null limits are unlimited.</summary>
internal sealed record BudgetStanding(long? MonthlyTokens, double? MonthlyCostUsd, long TokensUsed, double CostUsed, DateTimeOffset ResetsAt)
{
    public long? TokensLeft => MonthlyTokens is { } limit ? Math.Max(0, limit - TokensUsed) : null;

    public double? CostLeft => MonthlyCostUsd is { } limit ? Math.Max(0, limit - CostUsed) : null;

    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
}

/// <summary>Thrown before a model call that the user's budget no longer covers; the run ends <c>run_failed</c> <c>budget_exceeded</c>.</summary>
internal sealed class BudgetExceededException(string message) : Exception(message);

/// <summary>
/// One run's share of its user's budget: checked before each model call against what the run has used so far (its
/// <see cref="RunUsage"/>, priced by <paramref name="costOf"/>) and what was left when it started.
/// </summary>
internal sealed class RunBudget(BudgetStanding standing, RunUsage usage, Func<string, long, long, double> costOf)
{
    public BudgetStanding Standing => standing;

    public void EnsureWithinBudget()
    {
        var rows = usage.Snapshot();
        var tokens = rows.Sum(r => r.Input + r.Output);
        if (standing.TokensLeft is { } tokensLeft && tokens >= tokensLeft)
            throw new BudgetExceededException($"The monthly budget of {standing.MonthlyTokens:N0} tokens is used up; it renews on {standing.ResetsAt:yyyy-MM-dd}.");
        if (standing.CostLeft is { } costLeft && rows.Sum(r => costOf(r.Model, r.Input, r.Output)) >= costLeft)
            throw new BudgetExceededException($"The monthly budget of ${standing.MonthlyCostUsd:0.##} is used up; it renews on {standing.ResetsAt:yyyy-MM-dd}.");
    }
}
