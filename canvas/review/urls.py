"""Routes of review under /api/canvas/{deal_id}: suggestions, section approval and conditions, feedback,
comments and brushes. canvas.urls includes them."""

from canvas.review import viewsets
from deals.viewsets import DEAL_ID, ApiRouter

router = ApiRouter()
router.register(f"canvas/{DEAL_ID}/suggestions", viewsets.SuggestionViewSet, basename="canvas-suggestions")
router.register(f"canvas/{DEAL_ID}/sections", viewsets.SectionReviewViewSet, basename="canvas-section")
router.register(f"canvas/{DEAL_ID}/feedback", viewsets.FeedbackViewSet, basename="canvas-feedback")
router.register(f"canvas/{DEAL_ID}/comments", viewsets.CommentViewSet, basename="canvas-comments")
router.register(f"canvas/{DEAL_ID}/brush", viewsets.BrushViewSet, basename="canvas-brush")

urlpatterns = router.urls
