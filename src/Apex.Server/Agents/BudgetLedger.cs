using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Agents;

/// <summary>Where a user stands against their monthly budget: the tier's (settings) or the admin's override, and the month's usage.</summary>
internal sealed class BudgetLedger(IUsageStore usage, IOptions<BudgetOptions> options)
{
    /// <summary>One read of the month's usage, made only when a budget applies.</summary>
    public async Task<BudgetStanding> StandingAsync(UserRecord user, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var tierBudget = options.Value.For(user.Tier);
        var tokens = user.TokenBudget ?? tierBudget.MonthlyTokens;
        var cost = user.CostBudget ?? tierBudget.MonthlyCostUsd;
        var start = BudgetStanding.MonthStart(now);
        if (tokens is null && cost is null) return new BudgetStanding(null, null, 0, 0, start.AddMonths(1));
        var used = await usage.TotalSinceAsync(user.Id, start, cancellationToken);
        return new BudgetStanding(tokens, cost, used.Tokens, used.Cost, start.AddMonths(1));
    }
}
